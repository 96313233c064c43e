import os

import pytest


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CRM_FAULTS_FULL") == "1":
        return
    skip = pytest.mark.skip(reason="long fault matrix: set CRM_FAULTS_FULL=1")
    for item in items:
        if "faults_full" in item.keywords:
            item.add_marker(skip)
