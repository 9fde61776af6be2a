"""Evaluate the candidate (and the champion) on labeled reviews; promote the candidate if it wins.

    ./spark-submit.sh jobs/evaluate.py [--config conf/evaluate.yaml] [--set key=value ...]

Exit code: 0 promoted / evaluated / same version, 3 the candidate did not beat the champion, 2 bad input.
The last stdout line is the JSON summary (both metric sets and the decision).
"""

import sys

from spark_sentiment.validation.job import cli

if __name__ == "__main__":
    sys.exit(cli())
