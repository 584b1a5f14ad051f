"""Write the KubeRay manifests in deploy/kuberay/, or check that they match the app and settings.

    python scripts/kuberay.py generate [--working-dir URL]
    python scripts/kuberay.py check

`generate` keeps the working_dir URL the manifests already name unless given another; `check`
exits 1 naming each file that differs from what `generate` would write now; both exit 2, with the
reason, when the settings are invalid or `serve build` fails.
"""

import argparse
import sys
from pathlib import Path

from fraud_ray.kuberay import WORKING_DIR, manifests, working_dir_of
from fraud_ray.settings import SettingsError

ROOT = Path(__file__).resolve().parents[1]

FOLDER = ROOT / "deploy" / "kuberay"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["generate", "check"])
    parser.add_argument("--working-dir", help="URL of the repository zip the pods run")
    arguments = parser.parse_args()
    service = FOLDER / "rayservice.yaml"
    current = working_dir_of(service.read_text()) if service.exists() else WORKING_DIR
    try:
        wanted = manifests(ROOT, arguments.working_dir or current)
    except (SettingsError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if arguments.command == "generate":
        FOLDER.mkdir(parents=True, exist_ok=True)
        for name, text in wanted.items():
            (FOLDER / name).write_text(text)
        return 0
    stale = [
        name
        for name, text in wanted.items()
        if not (FOLDER / name).exists() or (FOLDER / name).read_text() != text
    ]
    for name in stale:
        print(f"deploy/kuberay/{name} is out of date: python scripts/kuberay.py generate")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
