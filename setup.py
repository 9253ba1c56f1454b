"""Builds the Go engine (one c-shared library holding every driver) into the package.

The library is loaded with ctypes, not imported as a CPython extension. A small
C module (gorelstorage._calls) then calls its exports directly, which is several
times cheaper than a ctypes call; it is built against the stable ABI, so one
wheel serves every Python from 3.10 on (tagged cp310-abi3-<platform>). When it
cannot be compiled (no Python headers), the package installs without it and
calls the library through ctypes.
"""
import os
import shutil
import subprocess
import sys

from setuptools import Extension
from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

from setuptools.command.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
LIBRARY = 'libgorelstorage.so'


def build_library(target_dir):
    go = shutil.which('go')
    if go is None:
        sys.exit('GoRelStorage needs the Go toolchain (go 1.26 or newer) on PATH to build its engine.')
    os.makedirs(target_dir, exist_ok=True)
    exports = os.path.join(HERE, 'capi', 'exports.map')
    cmd = [go, 'build', '-buildmode=c-shared', '-trimpath',
           '-ldflags=-s -w -extldflags=-Wl,--version-script=' + exports,
           '-o', os.path.join(target_dir, LIBRARY), './capi']
    env = dict(os.environ, CGO_ENABLED='1')
    print(' '.join(cmd), flush=True)
    subprocess.check_call(cmd, cwd=HERE, env=env)
    header = os.path.join(target_dir, LIBRARY[:-3] + '.h')
    if os.path.exists(header):
        os.remove(header)


class BuildPyWithGo(build_py):
    def run(self):
        super().run()
        build_library(os.path.join(self.build_lib, 'gorelstorage'))


class PlatformWheel(bdist_wheel):
    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return 'cp310', 'abi3', plat


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


CALLS = Extension('gorelstorage._calls', ['python/gorelstorage/_calls.c'], include_dirs=['capi'],
                  py_limited_api=True, optional=True, define_macros=[('Py_LIMITED_API', '0x030A0000')])

setup(cmdclass={'build_py': BuildPyWithGo, 'bdist_wheel': PlatformWheel}, distclass=BinaryDistribution,
      ext_modules=[CALLS])
