"""colnn.book.load_pickle: the book's .pkl files read, anything that could run code refused unexecuted.

The hostile pickles are built here, by hand with pickle opcodes or by
``pickle.dumps`` of an object whose ``__reduce__`` names a callable; dumping
never calls it, and each test checks that loading did not either.
"""

from __future__ import annotations

import collections
import os
import pickle
import re

import numpy as np
import pytest

from colnn.book import UnsafePickleError, load_pickle, save_pickle


def book_params(rng):
    return {"W1": rng.normal(size=(30, 1, 5, 5)), "b1": np.zeros(30), "W2": rng.normal(size=(4, 3)).astype(np.float32),
            "count": 3, "name": "SimpleConvNet", "lr": 0.01, "sizes": [1, (2, 3)], "steps": np.arange(4)}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_pickle_of_arrays_and_containers_loads_as_written(tmp_path, protocol):
    params = book_params(np.random.default_rng(0))
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps(params, protocol=protocol))  # what the book's save_params writes
    loaded = load_pickle(path)
    assert loaded.keys() == params.keys()
    for key, value in params.items():
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value)
            assert loaded[key].flags.writeable  # an optimizer will update it in place
        else:
            assert loaded[key] == value


def test_save_pickle_writes_what_the_books_pickle_load_reads(tmp_path):
    params = {"W1": np.arange(6.0).reshape(2, 3), "b1": np.zeros(3), "scores": collections.OrderedDict(a=1.5)}
    save_pickle(tmp_path / "x.pkl", params)
    with open(tmp_path / "x.pkl", "rb") as file:
        by_the_book = pickle.load(file)
    assert np.array_equal(by_the_book["W1"], params["W1"]) and by_the_book["scores"] == {"a": 1.5}
    assert load_pickle(tmp_path / "x.pkl")["scores"] == collections.OrderedDict(a=1.5)
    assert [p.name for p in tmp_path.iterdir()] == ["x.pkl"]  # no partial file left behind


class _RunsACommand:
    """Pickles as a call of os.system; never called here."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _refused(path, pattern):
    with pytest.raises(UnsafePickleError, match=pattern) as caught:
        load_pickle(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_a_global_that_would_run_a_shell_command_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"W1": np.ones(2), "hook": _RunsACommand(marker)}))
    _refused(path, r"refused the global (posix|nt)\.system")
    assert not marker.exists()
    # The same by hand, protocol 0 opcodes: GLOBAL posix.system, a string argument, REDUCE.
    path.write_bytes(b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    _refused(path, r"refused the global posix\.system")
    assert not marker.exists()


def test_a_callable_nested_deep_inside_containers_is_refused_even_uncalled(tmp_path):
    path = tmp_path / "nested.pkl"
    path.write_bytes(pickle.dumps({"W1": np.ones(2), "meta": [{"ok": (1, 2)}, {"f": (eval,)}]}))
    _refused(path, r"refused the global builtins\.eval")
    path.write_bytes(pickle.dumps({"loader": np.load}))
    _refused(path, r"refused the global numpy(\.\w+)*\.load")


@pytest.mark.parametrize("array, dtype", [
    (np.array([1, "a", None], dtype=object), "dtype('O')"),
    # A structured dtype is pickled as raw bytes ('V12') whose fields come later: refused at once.
    (np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), "dtype('V12')"),
    (np.array(["text"]), "dtype('<U4')"),
], ids=["object", "structured", "str"])
def test_arrays_of_other_than_numeric_dtypes_are_refused(tmp_path, array, dtype):
    path = tmp_path / "array.pkl"
    path.write_bytes(pickle.dumps({"W1": np.ones(2), "other": array}))
    _refused(path, re.escape(f"refused an array of dtype {dtype}"))


def test_objects_without_globals_but_not_on_the_list_are_refused(tmp_path):
    path = tmp_path / "set.pkl"
    path.write_bytes(pickle.dumps({"W1": {1, 2}}))
    _refused(path, "refused an object of type set")
    path.write_bytes(pickle.dumps({"W1": b"raw bytes"}))
    _refused(path, "refused an object of type bytes")


def test_damaged_files_are_one_error_naming_the_file(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps({"W1": np.ones(100)})[:50])
    _refused(path, "not a readable pickle of arrays")
    with pytest.raises(FileNotFoundError):
        load_pickle(tmp_path / "missing.pkl")


def test_save_pickle_refuses_what_load_pickle_would_refuse_and_writes_nothing(tmp_path):
    with pytest.raises(UnsafePickleError, match="will not write an object of type builtin_function_or_method"):
        save_pickle(tmp_path / "x.pkl", {"f": len})
    assert not list(tmp_path.iterdir())
