"""setuptools entry point: the metadata is in setup.cfg and pyproject.toml.

The one addition is mrcnn_imgaug_hook.pth, which must land at the top of
site-packages (a .pth file anywhere else is never read) for wheels and
editable installs alike: see BuildPyWithPth.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
# Runs _mrcnn_imgaug_hook.install() at interpreter start, so that imgaug
# imports on numpy 2 before mrcnn does (see _mrcnn_imgaug_hook.py).
PTH = "mrcnn_imgaug_hook.pth"


class BuildPyWithPth(build_py):
    """build_py that also puts PTH at the root of what gets installed.

    A wheel: the root of build_lib is the root of the wheel, i.e. of
    site-packages. An editable install (PEP 660, setuptools >= 64):
    build_lib is a throwaway folder, and setuptools points the install
    command's install_lib at the editable wheel being assembled (where it
    also writes data and scripts), so the file goes there.
    """

    def run(self):
        super().run()
        target = self.build_lib
        if getattr(self, "editable_mode", False):
            target = self.get_finalized_command("install").install_lib
        self.copy_file(os.path.join(HERE, PTH), os.path.join(target, PTH),
                       preserve_mode=False)

    def get_outputs(self, include_bytecode=1):
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(os.path.join(self.build_lib, PTH))
        return outputs


setup(cmdclass={"build_py": BuildPyWithPth})
