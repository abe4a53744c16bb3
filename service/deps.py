"""Dependencies shared by the routers: the engine and the settings the app was built with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from indexer import Engine, Settings


def get_engine(request: Request) -> Engine:
    """The one engine the lifespan created for this app."""
    engine: Engine = request.app.state.engine
    return engine


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
