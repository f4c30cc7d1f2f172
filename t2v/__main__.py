"""`python -m t2v …`

Once main() has returned, the command's work is done (a video or an export written whole, the line saying so
printed): Ctrl-C in the second of interpreter shutdown that follows (torch's and tqdm's teardown) is ignored, so it
neither prints a traceback ("Exception ignored in … KeyboardInterrupt") nor turns a finished run's exit status into a
signal's.
"""

import signal
import sys

try:
    from t2v.cli import main
except KeyboardInterrupt:  # Ctrl-C while torch loads (seconds): the line main() gives for one before any work
    sys.stderr.write("interrupted: nothing was written\n")
    sys.exit(130)

status = main()
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(status)
