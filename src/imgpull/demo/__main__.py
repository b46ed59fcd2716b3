import sys

from imgpull.demo.cli import main

sys.exit(main())
