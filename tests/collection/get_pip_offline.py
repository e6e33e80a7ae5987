"""Stand-in for the pip bootstrap script (get-pip) that ansible-test downloads from its CI file host
to put pip into each sanity test's fresh virtual environment. That host is not reachable here.

ansible-test runs this file as `GET_PIP` with pip's options and the pinned infrastructure packages
(e.g. `pip==23.1.2 setuptools==67.7.2 wheel==0.37.1`, or `pip==24.2 --no-setuptools --no-wheel`):
it installs the interpreter's bundled pip (ensurepip), then exactly those pins from the package
index pip is configured with. The test puts it where ansible-test looks first,
`~/.ansible/test/cache/get_pip_<version>.py` (tests/collection/test_collection.py).
"""

import subprocess
import sys

# get-pip's own options: leave out what the bundled pip brings along
GET_PIP_OPTIONS = {"--no-setuptools": "setuptools", "--no-wheel": "wheel"}

if __name__ == "__main__":
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_OPTIONS]
    unwanted = [GET_PIP_OPTIONS[arg] for arg in sys.argv[1:] if arg in GET_PIP_OPTIONS]
    # ensurepip in a process of its own: it sets PIP_CONFIG_FILE=/dev/null in its environment,
    # which would hide the machine's pip configuration (index, certificates) from the install.
    subprocess.check_call([sys.executable, "-m", "ensurepip"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
    for name in unwanted:
        if subprocess.call([sys.executable, "-m", "pip", "show", "--quiet", name], stdout=subprocess.DEVNULL) == 0:
            subprocess.check_call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", name])
