"""`python -m t2v …`

A Ctrl-C while the modules load is answered once they have: one line, exit status 130. Once main() has returned,
the command's work is done (a video or an export written whole, the line saying so printed): Ctrl-C in the second
of interpreter shutdown that follows (torch's and tqdm's teardown) is ignored, so it neither prints a traceback
("Exception ignored in … KeyboardInterrupt") nor turns a finished run's exit status into a signal's.
A setting in the environment that torch or huggingface_hub refuses as they load (a value they cannot read, a path they
cannot make or use) is one line naming it, exit status 2 (t2v.cli_environment), not their traceback or torch's abort.
"""

import signal
import sys

from t2v.cli_environment import allocator_problem, refused_setting


def _refused(problem: str) -> None:
    """Stop before any work: `problem` is a setting of the environment a library loaded here cannot take."""
    sys.stderr.write(f"error: {problem}\n")
    sys.exit(2)


if (problem := allocator_problem()) is not None:  # torch would abort as it loads, with no Python error to catch
    _refused(problem)

# Ctrl-C while torch and the rest load (seconds) is kept for after the imports, not raised inside them: torch's and
# numpy's imports turn a KeyboardInterrupt into an ImportError or a RecursionError, or swallow it and the run goes on
interrupted: list[int] = []
handler = signal.getsignal(signal.SIGINT)  # SIG_IGN where the caller ignores it (nohup, a background job): kept
if handler is signal.default_int_handler:
    signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
try:
    from t2v.cli import main
except KeyboardInterrupt:  # one raised all the same (SIGINT sent as the handler changed)
    interrupted.append(signal.SIGINT)
except (ValueError, OSError) as exc:  # a library's own check of a setting's value, or a path a setting names that it
    #                                     could not make or use (TORCHINDUCTOR_CACHE_DIR=/dev/null); one that names no
    #                                     setting (a broken install, an ImportError) keeps its traceback
    if (problem := refused_setting(exc)) is None:
        raise
    _refused(problem)
finally:
    signal.signal(signal.SIGINT, handler)
if interrupted:  # the line main() gives for a Ctrl-C before any work
    sys.stderr.write("interrupted: nothing was written\n")
    sys.exit(130)

status = main()
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(status)
