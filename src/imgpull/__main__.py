import sys

from imgpull.cli.launch import main

sys.exit(main())
