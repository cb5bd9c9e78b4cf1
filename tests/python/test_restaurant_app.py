"""The restaurant as an application of the library: the core knows none of its sections;
its schema (scripts/restaurant-schema.ini, the one place of its defaults) makes them
known with the core's strict file:line errors; the shipped config and the seed's own
file load with it; the shipped config writes the seed's payload carrier; both
languages' services order from the seed's full menu; the library package holds no
application."""
import os
import re
from pathlib import Path

import pytest

import ituna

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
SCHEMA = SCRIPTS / "restaurant-schema.ini"
SHIPPED = SCRIPTS / "ituna-config.ini"
SEED = ROOT / "tests" / "fixtures" / "seed-ituna-config.ini"
SEED_MENU = ["ITUNA SOUP", "TUNA SALAD", "TUNA MAKI", "TUNA SASHIMI", "TUNA NIGIRI", "SPICY TUNA NIGIRI",
             "ITUNA ROLL", "SPICY ITUNA ROLL"]
APP_SECTIONS = ["initial-order", "kitchen-queue", "simulated-delays", "services", "rates", "failure-rates",
                "topics", "restaurant"]


def test_the_core_alone_does_not_know_the_restaurant(monkeypatch):
    monkeypatch.delenv("ITUNA_CONFIG_SCHEMA", raising=False)
    with pytest.raises(ituna.ConfigError, match=r"ituna-config\.ini:\d+: \[initial-order\]: unknown section"):
        ituna.load_config(SHIPPED, env=False)
    core = ituna.load_config(env=False)
    assert not set(APP_SECTIONS) & set(core), sorted(core)


def test_shipped_and_seed_configs_load_with_the_schema():
    shipped = ituna.load_config(SHIPPED, schema=SCHEMA, env=False)
    assert shipped["simulated-delays"]["order-validation-inventory"] == "400"  # the planted stage
    # keys the shipped file leaves out read as the schema's defaults
    assert shipped["topics"] == {"rejected": "ituna-rejected", "ready": "ituna-ready"}
    assert shipped["restaurant"]["orders"] == "30" and shipped["restaurant"]["broker"] == "embedded"
    seed = ituna.load_config(SEED, schema=SCHEMA, env=False)
    assert seed["queue"]["host"] == "broker" and seed["simulated-delays"]["kitchen-service"] == "140"
    assert seed["services"]["kitchen-service"] == "lua" and seed["rates"]["direct-kitchen-ordering"] == "0.5"


def test_app_sections_keep_the_strict_file_line_errors(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[rates]\nwebsite-ordering = 1\n\nonsite-ordering = lots\n")
    with pytest.raises(ituna.ConfigError, match=r"bad\.ini:4: \[rates\] onsite-ordering: expected a number "
                                                r">= 0, got 'lots'"):
        ituna.load_config(bad, schema=SCHEMA, env=False)
    bad.write_text("[services]\nkitchen-service = cobol\n")
    with pytest.raises(ituna.ConfigError, match=r"bad\.ini:2: \[services\] kitchen-service: expected one of "
                                                r"lua, python, got 'cobol'"):
        ituna.load_config(bad, schema=SCHEMA, env=False)
    bad.write_text("[topics]\nrejectd = x\n")
    with pytest.raises(ituna.ConfigError, match=r"bad\.ini:2: \[topics\] rejectd: unknown key \(known in "
                                                r"\[topics\]: rejected, ready\)"):
        ituna.load_config(bad, schema=SCHEMA, env=False)


def test_the_restaurants_defaults_live_in_its_schema_only():
    """No other file of the restaurant restates a default of the schema as a table."""
    for f in [SCRIPTS / "python" / "common.py", SCRIPTS / "lua" / "common.lua",
              SCRIPTS / "ituna_restaurant" / "launcher.py", ROOT / "core" / "src" / "config_schema.c"]:
        text = f.read_text()
        assert "DEFAULT" not in text.replace("DEFAULTS_", ""), f"{f} holds a defaults table"
        if f.name == "config_schema.c":
            for section in APP_SECTIONS:
                assert not re.search(r'K_\w+\("%s"' % section, text), f"the core's table holds [{section}]"
                assert not re.search(r'\{ "%s", ' % section, text), f"the core's sections list [{section}]"


def test_the_shipped_config_writes_the_seed_carrier():
    shipped = ituna.load_config(SHIPPED, schema=SCHEMA, env=False)
    assert shipped["compat"]["payload-carrier"] == "true"
    text = SHIPPED.read_text()
    block = text[:text.index("\n[compat]\n")].rsplit("\n\n", 1)[-1]
    assert "KeyError: 'carrier'" in block and "seed" in block, "the switch is on without saying why"


def test_both_languages_order_from_the_seeds_full_menu():
    import importlib.util
    spec = importlib.util.spec_from_file_location("restaurant_common", SCRIPTS / "python" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    assert common.MENU == SEED_MENU
    lua = (SCRIPTS / "lua" / "common.lua").read_text()
    lua_menu = re.search(r"M\.MENU = \{(.*?)\}", lua, re.S).group(1)
    assert re.findall(r'"([^"]+)"', lua_menu) == SEED_MENU


def test_the_library_package_holds_no_application():
    pkg = Path(ituna.__file__).parent
    py_lines = sum(len(p.read_text().splitlines()) for p in pkg.rglob("*.py"))
    # the two aliases (ituna.report, ituna.restaurant) are a few lines each
    for alias in ("report.py", "restaurant/__init__.py", "restaurant/__main__.py"):
        assert len((pkg / alias).read_text().splitlines()) < 15
    assert not (pkg / "scripts").exists(), "the restaurant's scripts are shipped inside the library package"
    assert py_lines < 1500, py_lines
    import importlib
    import ituna_report
    import ituna_restaurant
    assert importlib.import_module("ituna.report") is ituna_report
    assert importlib.import_module("ituna.restaurant") is ituna_restaurant


def test_exporter_names_the_exporter_type():
    # the README's ituna.init(exporter="console")
    t = ituna.init(service_name="readme", env=False, exporter="none")
    assert t.config_value("exporter", "type") == "none"
    with pytest.raises(ituna.ConfigError, match="not supported"):
        ituna.init(service_name="readme", env=False, exporter="jaeger")


@pytest.mark.parametrize("name", ["restaurant-schema.ini", "restaurant-profile.ini"])
def test_the_restaurants_data_files_ship_with_its_package(name):
    import ituna_restaurant
    pkg = Path(ituna_restaurant.__file__).parent
    installed = pkg / "scripts" / name
    source = pkg.parent / name
    assert installed.is_file() or source.is_file(), f"{name} is neither installed nor in the source tree"
    assert os.path.getsize(installed if installed.is_file() else source) > 0
