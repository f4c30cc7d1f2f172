from pathlib import Path

DATA = Path(__file__).parent / "data"  # test data carried in the repository; data/README.md says where it is from
