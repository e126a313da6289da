"""What the hypothesis tests of the exported signatures share (issue #17)."""

from hypothesis import HealthCheck, settings

SECONDS_PER_CALL = 60.0  # generous: two loaded cores shared by several test runs
# Few examples, derandomized: the default test run stays fast and every CI run tries the same.
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
