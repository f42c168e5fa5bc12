import pytest

# The shared helpers assert too (a form that must answer 303, a job that must finish): pytest
# rewrites their asserts as it does a test's, so a failure there shows the values.
pytest.register_assert_rewrite("tests.support")
