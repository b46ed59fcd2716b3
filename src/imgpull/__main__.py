import sys

from imgpull.cli import main

sys.exit(main())
