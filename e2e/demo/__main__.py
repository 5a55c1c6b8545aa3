import sys

from e2e.demo.driver import main

sys.exit(main())
