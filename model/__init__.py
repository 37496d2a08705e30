"""iospec's models of workerd's request handling: one declarative definition per model.

`model.core` is the modelling language; `model.catalog` lists the models and their standard
configurations; `model.rules` the rule ids they implement.
"""
