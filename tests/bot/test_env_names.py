"""Names in `.env` or the environment that are not settings but look meant for one are named once, with the setting
they most likely stand for (bot.env_file.misspelled); other programs' variables are left alone."""

from pathlib import Path

from bot.env_file import misspelled


def test_a_name_with_a_prefix_only_settings_use_is_named_with_the_nearest_setting_however_far(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("QUEUE_CAP=3\nGALLERY_URL=https://videos.example.org\nT2V_GPUS=2\nHISTORY_DAYS=90\n"
                        "T2V_WEIGHTS=/srv/weights\nRAY_DEDUP_LOGS=0\nPGHOST=db\nMY_APP_KEY=x\n")

    meant = {line.split(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in misspelled({}, env_file=str(env_file))}

    assert meant == {"QUEUE_CAP": "QUEUE_GLOBAL_CAP?", "GALLERY_URL": "GALLERY_PUBLIC_URL?",
                     "T2V_GPUS": "T2V_DEVICE?", "HISTORY_DAYS": "HISTORY_KEEP_DAYS?"}

