"""Django's own test runner, plus one herald serving the test database for the whole run.

herald starts after Django has created (and herald_django's hook has migrated) the test
database, and stops before Django drops it: its connections would keep DROP DATABASE
waiting.
"""

from django.test.runner import DiscoverRunner

import support


class HeraldRunner(DiscoverRunner):
    def setup_databases(self, **kwargs):
        old_config = super().setup_databases(**kwargs)
        support.start_herald()
        return old_config

    def teardown_databases(self, old_config, **kwargs):
        support.stop_herald()
        super().teardown_databases(old_config, **kwargs)
