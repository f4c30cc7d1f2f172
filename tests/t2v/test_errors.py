"""t2v's errors: one hierarchy, caught by type; those with fields survive a trip to another process."""

import pickle

import pytest

from t2v import (
    ArchitectureError,
    DownloadError,
    GenerationCancelled,
    GenerationRequest,
    InvalidRequest,
    NonFiniteOutput,
    T2VError,
    UnsupportedDevice,
    VideoTooLargeError,
    WeightsError,
    WriteError,
)


def test_every_error_is_a_t2v_error_and_the_bad_values_are_value_errors():
    for error in (InvalidRequest, GenerationCancelled, WeightsError, ArchitectureError, VideoTooLargeError,
                  UnsupportedDevice, NonFiniteOutput, WriteError):
        assert issubclass(error, T2VError)
    assert issubclass(WriteError, OSError) and not issubclass(NonFiniteOutput, ValueError)  # the disk, not a value
    assert all(issubclass(e, ValueError) for e in (InvalidRequest, WeightsError, VideoTooLargeError,
                                                   UnsupportedDevice))
    assert issubclass(ArchitectureError, WeightsError) and not issubclass(GenerationCancelled, ValueError)
    with pytest.raises(T2VError, match="frames=0"):
        GenerationRequest("a cat", frames=0)


@pytest.mark.parametrize("error", [GenerationCancelled(3, 50), VideoTooLargeError(9_000_000, 8_000_000),
                                   NonFiniteOutput("latents")])
def test_errors_with_fields_pickle_with_them(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)


def test_every_error_class_is_exported_and_drawn_in_the_hierarchy():
    import t2v.errors

    classes = [name for name, value in vars(t2v.errors).items()
               if isinstance(value, type) and issubclass(value, T2VError)]
    assert "DownloadError" in classes and issubclass(DownloadError, T2VError)
    for name in classes:
        assert name in t2v.__all__ and getattr(t2v, name) is getattr(t2v.errors, name), name
        assert f" {name}" in t2v.errors.__doc__, name
