"""The OpenAPI 3.1 description of the Function App's HTTP routes, kept in `functions/openapi.json`.

The response schemas are the report's own pydantic models (`shared.status.report`), so the file
says what the code sends; the routes are a table below. `functions/openapi.json` is this module's
output, committed and served by the app (`GET /api/status/openapi.json`); after changing a route
or a model, write it again:

    .venv/bin/python -m shared.status.openapi > functions/openapi.json

A test checks the file is up to date, that every HTTP route the app registers is in it, and that
real answers of the JSON routes carry every field its schemas require.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from shared.group_directory import RECORDS_PARAMETER, ROUTE as GROUP_ROUTE, GroupDirectory
from shared.status.report import DossierStatus, IncidentStateFilter, StatusReport
from shared.sync.preview import Preview

OPENAPI_FILE = Path(__file__).resolve().parents[2] / "functions" / "openapi.json"
REF = "#/components/schemas/{model}"


class ErrorBody(BaseModel):
    """A request the route cannot answer: a French sentence and its catalogue code."""

    model_config = ConfigDict(extra="forbid")
    code: Optional[str] = Field(description="catalogue code of `error`")
    error: str = Field(description="what is wrong, in French")


class HookOutcome(BaseModel):
    """What an SSM → Sage pass asked by a webhook did."""

    model_config = ConfigDict(extra="forbid")
    read: int = Field(description="SSM records read")
    commands: int = Field(description="commands sent to the agents")


class ReplayOutcome(BaseModel):
    """What sending a dossier's set-aside records again did."""

    model_config = ConfigDict(extra="forbid")
    dossier: str
    replayed: int = Field(description="records sent again")
    resolved: int = Field(description="records now in SSM, their incidents closed")
    parked_again: int = Field(description="records set aside again (SSM still refuses or is still down)")
    given_up: int = Field(description="records whose last try this was")
    set_aside: int = Field(description="records still set aside")


class AdoptionAnswer(BaseModel):
    """The administrator's adoption decision, as applied: a French sentence and its code."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="catalogue code of `message`")
    message: str = Field(description="what was done, in French")
    replayed: Optional[int] = Field(default=None, description="held changes applied at once")
    refused: Optional[list[Any]] = Field(default=None, description="matches that could not be bound")


MODELS: tuple[type[BaseModel], ...] = (StatusReport, DossierStatus, ErrorBody, HookOutcome, ReplayOutcome,
                                       AdoptionAnswer, Preview, GroupDirectory)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


FILTERS = [
    _query("dossier", "un dossier (son identifiant), ou `_group` pour les incidents du groupe",
           {"type": "string"}),
    _query("entity", "les incidents et le journal d'une seule entité (account, contact, product …)",
           {"type": "string"}),
    _query("state", "l'état des incidents listés", {"type": "string", "enum": [s.value for s in IncidentStateFilter],
                                                    "default": IncidentStateFilter.OPEN.value}),
    _query("run", "le journal de cette synchronisation seulement (son `run_id`)", {"type": "string"}),
    _query("runs", "nombre de synchronisations par dossier", {"type": "integer", "minimum": 1, "maximum": 100}),
    _query("journal", "nombre de lignes du journal par dossier", {"type": "integer", "minimum": 0, "maximum": 500}),
    _query("incidents", "nombre d'incidents par dossier", {"type": "integer", "minimum": 1, "maximum": 5000}),
]
DOSSIER = {"name": "dossier", "in": "path", "required": True, "schema": {"type": "string"}}
BAD_FILTER = _json(ErrorBody, "un filtre a une valeur refusée ; `error` dit laquelle")
HTML = {"content": {"text/html": {"schema": {"type": "string"}}}}

# route (as registered, under the host's /api prefix) → method → operation
PATHS: dict[str, dict[str, dict[str, Any]]] = {
    "/status": {"get": {
        "operationId": "status", "summary": "État de synchronisation du groupe de dossiers (JSON)",
        "parameters": FILTERS,
        "responses": {"200": _json(StatusReport, "l'état de chaque dossier du groupe"), "400": BAD_FILTER}}},
    "/status/page": {"get": {
        "operationId": "status_page", "summary": "La page « État de synchronisation » (HTML, en français)",
        "parameters": FILTERS,
        "responses": {"200": {"description": "la page", **HTML}, "400": {"description": "un filtre refusé", **HTML}}}},
    "/status/dossiers/{dossier}": {"get": {
        "operationId": "status_dossier", "summary": "État d'un dossier (JSON)",
        "parameters": [{"name": "dossier", "in": "path", "required": True, "schema": {"type": "string"}}]
        + [p for p in FILTERS if p["name"] != "dossier"],
        "responses": {"200": _json(DossierStatus, "l'état du dossier"), "400": BAD_FILTER,
                      "404": _json(ErrorBody, "le groupe ne connaît pas ce dossier")}}},
    "/status/openapi.json": {"get": {
        "operationId": "status_openapi", "summary": "Cette description des routes (OpenAPI 3.1)",
        "responses": {"200": {"description": "ce document",
                              "content": {"application/json": {"schema": {"type": "object"}}}}}}},
    "/status/dossiers/{dossier}/replay": {"post": {
        "operationId": "status_replay",
        "summary": "Renvoie tout de suite les enregistrements mis de côté du dossier (JSON, ou une page HTML "
                   "pour un navigateur)",
        "parameters": [DOSSIER],
        "responses": {"200": {**_json(ReplayOutcome, "ce que le renvoi a fait"), "content": {
                          "application/json": {"schema": _ref(ReplayOutcome)}, **HTML["content"]}},
                      "404": _json(ErrorBody, "le groupe ne connaît pas ce dossier")}}},
    "/status/dossiers/{dossier}/preview": {"get": {
        "operationId": "status_preview", "summary": "Aperçu du dernier réalignement préparé à blanc (JSON)",
        "parameters": [DOSSIER],
        "responses": {"200": _json(Preview, "par entité : ce qui serait créé, modifié, laissé, repris"),
                      "404": _json(ErrorBody, "aucun aperçu pour ce dossier")}}},
    "/status/dossiers/{dossier}/preview/page": {"get": {
        "operationId": "status_preview_page", "summary": "Le même aperçu, en page HTML (en français)",
        "parameters": [DOSSIER],
        "responses": {"200": {"description": "la page", **HTML}}}},
    "/status/dossiers/{dossier}/adoptions": {"post": {
        "operationId": "adoptions",
        "summary": "Décision de l'administrateur sur la reprise des fiches SSM existantes",
        "parameters": [DOSSIER],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["action"],
            "properties": {"action": {"type": "string", "enum": ["confirm", "bind", "create"]},
                           "entity": {"type": "string"}, "key": {"type": "string"},
                           "ssm_id": {"type": "integer"}}}}}},
        "responses": {"200": _json(AdoptionAnswer, "la décision appliquée"),
                      "400": _json(ErrorBody, "une demande incomplète"),
                      "404": _json(ErrorBody, "aucun aperçu à confirmer"),
                      "409": _json(ErrorBody, "la reprise est refusée ; `error` dit pourquoi")}}},
    f"/{GROUP_ROUTE}": {"get": {
        "operationId": "group_dossiers",
        "summary": "Les dossiers que le groupe connaît déjà (pour un agent réinstallé)",
        "parameters": [_query(RECORDS_PARAMETER, "compter les fiches reliées de chaque dossier", {"type": "boolean",
                                                                                         "default": True})],
        "responses": {"200": _json(GroupDirectory, "chaque dossier : état, dernière synchronisation, identité")}}},
    "/ssm/hooks": {"post": {
        "operationId": "ssm_hooks", "summary": "Webhook de SSM : lit tout de suite ses modifications (SSM → Sage)",
        "responses": {"200": _json(HookOutcome, "ce que la lecture a fait")}}},
}


def build() -> dict[str, Any]:
    """The whole document."""
    _, schemas = models_json_schema([(m, "serialization") for m in MODELS], ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Connecteur Sage ⇄ Sage Sales Management", "version": "1",
                 "description": "Les routes HTTP de l'application Azure Functions. Chaque phrase destinée à un "
                                "utilisateur est en français et accompagnée de son code stable (`code`)."},
        "servers": [{"url": "/api"}],
        "security": [{"functionKeyHeader": []}, {"functionKeyQuery": []}],
        "paths": PATHS,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "functionKeyHeader": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"}}},
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def load() -> str:
    """The committed document, as served."""
    return OPENAPI_FILE.read_text(encoding="utf-8")


if __name__ == "__main__":
    print(render(), end="")
