from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _requirements(name):
    lines = (HERE / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _version():
    for line in (HERE / "kseg" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip('"')
    raise RuntimeError("kseg/__init__.py has no __version__")


setup(
    name="kseg",
    version=_version(),
    description="Train semantic-segmentation models with Keras and ship them as verified TFLite files.",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["kseg", "kseg.*"]),
    package_data={"kseg.demo": ["static/*"]},
    python_requires=">=3.10",
    install_requires=_requirements("requirements.txt"),
    extras_require={"test": _requirements("requirements-test.txt"),
                    # kseg export --npu: Arm's Vela compiler for Ethos-U NPUs
                    "npu": ["ethos-u-vela>=5.2,<6"]},
    entry_points={"console_scripts": ["kseg=kseg.cli:main"]},
)
