"""The scoring job with the keyword predictor, whose Python workers record the interpreter they run
(``tests/test_cluster.py`` submits it with a packed executor environment).

    spark-submit.sh tests/env_job.py RECORD_DIR [--set key=value ...]
"""

from __future__ import annotations

import sys

import stubs
from pyspark import cloudpickle
from spark_sentiment.scoring.job import main

if __name__ == "__main__":
    cloudpickle.register_pickle_by_value(stubs)  # executors cannot import tests/
    sys.exit(main(sys.argv[2:], factory=stubs.InterpreterRecordingFactory(sys.argv[1])))
