import os

pytest_plugins = ["tests.fakediscord.fixtures"]

# The tests run on CPUs: t2v's Triton kernels (t2v.kernels) run there in Triton's interpreter, which Triton picks
# when it is first imported (TRITON_INTERPRET=0 in the environment keeps it off).
os.environ.setdefault("TRITON_INTERPRET", "1")

# Tests run many tiny torch ops; on 2 shared cores one intra-op thread avoids OpenMP spin contention.
import torch  # noqa: E402

torch.set_num_threads(1)
