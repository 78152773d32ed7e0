from tests.edge.conftest import fake  # noqa: F401 - one fake upstream per session
