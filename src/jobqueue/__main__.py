import sys

from jobqueue.tools.cli import main

sys.exit(main())
