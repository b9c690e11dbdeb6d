import pytest

from .formats import serve


@pytest.fixture
def served(tmp_path):
    """A loopback HTTP server on 127.0.0.1 serving tmp_path/'www' from a thread: (www folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    with serve(www) as url:
        yield www, url
