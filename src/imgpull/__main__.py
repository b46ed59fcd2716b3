import sys

from imgpull.cli.main import main

sys.exit(main())
