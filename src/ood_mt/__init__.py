"""ood-multitenant: share running services between selected users through Open OnDemand."""

__version__ = "0.1.0"
