"""Run SQL statements against the project's catalog and print each result row as JSON.

./spark-submit.sh jobs/sql.py "SELECT text_sentiment, count(*) FROM scored GROUP BY 1"
./spark-submit.sh jobs/sql.py --function models:/SentimentAnalysis@champion "SELECT sentiment('great!')"
"""

import sys

from spark_sentiment.inference.sql import main

if __name__ == "__main__":
    sys.exit(main())
