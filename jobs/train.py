"""Fine-tune a sentiment classifier and register it in MLflow.

    ./spark-submit.sh jobs/train.py [--config conf/train.yaml] [--set key=value ...]

The last stdout line is the JSON summary (run_id, model_uri, aliases, metrics, ...).
"""

import sys

from spark_sentiment.training.job import cli

if __name__ == "__main__":
    sys.exit(cli())
