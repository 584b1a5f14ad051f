"""The Kafka ingestion pool for a running Ray cluster and Serve application.

    python ingest.py --bootstrap broker:9092 --topic transactions --pool-size 4

It is `fraud-ray ingest` with the same options: consumer actors in one group feed the Serve graph
and write decisions to Kafka and the decision log until SIGTERM, then drain.
"""

import sys

from fraud_ray.cli import app

if __name__ == "__main__":
    app(args=["ingest", *sys.argv[1:]], prog_name="ingest.py")
