"""ituna-restaurant: the ITuna restaurant, an application of the ituna library: the
launcher (launcher.py), the five services in Lua and Python (scripts/python, scripts/lua),
its config (ituna-config.ini), its config schema (restaurant-schema.ini) and its report
profile (restaurant-profile.ini). Installed, the data files live in this package's
scripts/ folder; in the source tree, in the folder above it."""

from .launcher import Restaurant, RestaurantError, check_config, main  # noqa: F401
