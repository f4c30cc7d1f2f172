"""The README's Python quick start runs as printed, on tiny-random, in seconds."""

import re
from pathlib import Path

import av

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_python_quick_start_runs_with_the_models_defaults(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("From Python ("):]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'load_pipeline("tiny-random")' in snippet
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, str(README), "exec"), {})
    steps = capsys.readouterr().out.splitlines()
    assert steps[0] == "1 50" and steps[-1] == "50 50"  # ModelScope's 50 steps
    with av.open(str(tmp_path / "panda.mp4")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 4 and (frames[0].width, frames[0].height) == (64, 64)  # tiny-random's 4 × 64×64
