pytest_plugins = ["tests.fakediscord.fixtures"]

# Tests run many tiny torch ops; on 2 shared cores one intra-op thread avoids OpenMP spin contention.
import torch  # noqa: E402

torch.set_num_threads(1)
