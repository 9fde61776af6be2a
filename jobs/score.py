"""Label review columns of a Delta table with a registered model and write a Delta table.

    ./spark-submit.sh jobs/score.py [--config conf/score.yaml] [--set key=value ...]

The last stdout line is the JSON run summary (rows, label counts, model version, rows/s, ...).
"""

import sys

from spark_sentiment.scoring.job import cli

if __name__ == "__main__":
    sys.exit(cli())
