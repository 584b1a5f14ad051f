"""The training job for a running Ray cluster.

    ray job submit --working-dir . -- python tune.py --data /shared/transactions --trials 20

It is `fraud-ray train` with the same options: features with Ray Data, Ray Tune + Optuna over
distributed XGBoost and LightGBM on Ray Train, calibration, and registration in MLflow. Inside a job,
Ray sets RAY_ADDRESS, so the library joins the cluster instead of starting one.
"""

import sys

from fraud_ray.cli import app

if __name__ == "__main__":
    app(args=["train", *sys.argv[1:]], prog_name="tune.py")
