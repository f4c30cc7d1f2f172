"""t2v's errors: one hierarchy, caught by type; those with fields survive a trip to another process."""

import pickle

import pytest

from t2v import (
    ArchitectureError,
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
