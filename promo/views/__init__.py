from promo.views import ids  # noqa: F401  (registers the {name:int64} path convertor before any route is built)
