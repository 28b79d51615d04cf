import sys

from s3s3.cli import main

sys.exit(main())
