"""DOUBLES for the virtual lab: stand-ins for what cannot exist in its guests.

Each module here is named after what it doubles and says so in its docstring; runbooks pick a
double only when the inventory is a lab inventory (`lab:` section), and nothing here is ever
installed on a real site.
"""
