"""Run SQL statements against the project's catalog and print each result row as JSON.

./spark-submit.sh jobs/sql.py "SELECT text_sentiment, count(*) FROM scored GROUP BY 1"
./spark-submit.sh jobs/sql.py --function models:/SentimentAnalysis@champion "SELECT sentiment('great!')"
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("statements", nargs="+", help="SQL statements, run in order")
    parser.add_argument("--function", metavar="MODEL_URI", help="register sentiment(text) backed by this model first")
    args = parser.parse_args(argv)

    from spark_sentiment.core.errors import SentimentError
    from spark_sentiment.core.session import get_spark

    spark = get_spark("spark-sentiment-sql")
    try:
        if args.function:
            from spark_sentiment.config.sections import MlflowSection
            from spark_sentiment.inference.sql import register_sentiment_function
            from spark_sentiment.model import tracking

            tracking.configure(MlflowSection())
            register_sentiment_function(spark, args.function)
        for statement in args.statements:
            for row in spark.sql(statement).collect():
                print(json.dumps(row.asDict(recursive=True), default=str), flush=True)
    except SentimentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
