"""One router per capability; each route translates HTTP <-> one engine call."""
