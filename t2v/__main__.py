"""`python -m t2v …`"""

import sys

try:
    from t2v.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch loads (seconds): the line main() gives for one before any work
    sys.stderr.write("interrupted: nothing was written\n")
    sys.exit(130)

sys.exit(main())
