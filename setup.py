"""Build of the ituna-core Python distribution: one extension, ituna._core, made of
the C core (core/src/*.c) and the CPython binding (bindings/python/_core/*.c),
linked against the system's librdkafka, libcurl, cJSON and zlib found with
pkg-config. Metadata lives in pyproject.toml. ITUNA_PKG_CONFIG_STATIC=1 asks
pkg-config for static linking (tools/build-wheel.sh: its own static librdkafka and
libcurl go into the extension)."""
import glob
import os
import shlex
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_CONFIG_MODULES = ["rdkafka", "libcurl", "libcjson", "zlib"]


def pkg_config(*args):
    """Flags from pkg-config, or a clear message naming what is missing."""
    exe = os.environ.get("PKG_CONFIG", "pkg-config")
    try:
        static = ["--static"] if os.environ.get("ITUNA_PKG_CONFIG_STATIC") == "1" else []
        out = subprocess.run([exe, *static, *args, *PKG_CONFIG_MODULES], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        sys.exit("ituna-core: pkg-config not found; install pkg-config and the development packages of "
                 "librdkafka (>= 2.0), libcurl, libcjson and zlib (Debian: librdkafka-dev libcurl4-openssl-dev "
                 "libcjson-dev zlib1g-dev pkg-config)")
    except subprocess.CalledProcessError as e:
        sys.exit("ituna-core: pkg-config could not find all of %s:\n%s\nInstall their development packages "
                 "(Debian: librdkafka-dev libcurl4-openssl-dev libcjson-dev zlib1g-dev)."
                 % (", ".join(PKG_CONFIG_MODULES), e.stderr.strip()))
    return shlex.split(out.stdout)


def rel(paths):
    return sorted(os.path.relpath(p, HERE) for p in paths)


class BuildExt(build_ext):
    """Compiles in parallel and asks pkg-config only when actually building."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        cflags = pkg_config("--cflags")
        libs = pkg_config("--libs")
        for ext in self.extensions:
            ext.extra_compile_args = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                                      "-Wno-missing-field-initializers", "-Wno-cast-function-type",
                                      "-fvisibility=hidden", *cflags]
            ext.extra_link_args = [*libs, "-pthread"]
            if os.environ.get("ITUNA_PKG_CONFIG_STATIC") == "1":
                # the static libraries' symbols stay inside the extension
                ext.extra_link_args.append("-Wl,--exclude-libs,ALL")
        super().build_extensions()


class BuildPy(build_py):
    """Ships the restaurant's service scripts, config, schema and report profile inside
    its application package (ituna_restaurant/scripts/), so an installed ituna-restaurant
    runs without the source tree. The ituna library package holds none of them."""

    def run(self):
        super().run()
        src = os.path.join(HERE, "scripts")
        if not os.path.isdir(src):
            return
        dst = os.path.join(self.build_lib, "ituna_restaurant", "scripts")
        for sub, pattern in (("python", "*.py"), ("lua", "*.lua"), ("", "*.ini")):
            os.makedirs(os.path.join(dst, sub), exist_ok=True)
            for f in glob.glob(os.path.join(src, sub, pattern)):
                shutil.copy2(f, os.path.join(dst, sub, os.path.basename(f)))


README_PATH = os.path.join(HERE, "README.md")
README = open(README_PATH, encoding="utf-8").read() if os.path.exists(README_PATH) else ""

core_sources = rel(glob.glob(os.path.join(HERE, "core", "src", "*.c")))
binding_sources = rel(glob.glob(os.path.join(HERE, "bindings", "python", "_core", "*.c")))

setup(
    # the library (ituna) and the two applications built on it (scripts/): the launcher
    # ituna_restaurant and the report ituna_report
    packages=find_packages(where="bindings/python", include=["ituna", "ituna.*"])
    + ["ituna_restaurant", "ituna_report"],
    package_dir={"": "bindings/python", "ituna_restaurant": "scripts/ituna_restaurant",
                 "ituna_report": "scripts/ituna_report"},
    # bin/ituna-lua: put there by tools/build-wheel.sh only (a wheel's Lua host)
    package_data={"ituna": ["py.typed", "*.pyi", "**/*.pyi", "bin/ituna-lua"]},
    ext_modules=[
        Extension(
            "ituna._core",
            sources=binding_sources + core_sources,
            include_dirs=["core/include", "core/src", "bindings/python/_core"],
            depends=rel(glob.glob(os.path.join(HERE, "core", "include", "ituna", "*.h"))
                        + glob.glob(os.path.join(HERE, "core", "src", "*.h"))
                        + glob.glob(os.path.join(HERE, "bindings", "python", "_core", "*.h"))),
        )
    ],
    cmdclass={"build_ext": BuildExt, "build_py": BuildPy},
    # build-py/ keeps setuptools out of the CMake build directories at the root
    options={"build": {"build_base": "build-py"}},
    long_description=README,
    long_description_content_type="text/markdown",
)
