"""The baseline for the intake benchmark: a bare FastAPI endpoint that validates the same
Report model and answers 202, storing nothing."""

import uuid

from fastapi import FastAPI

from shared.report import Report

app = FastAPI()


@app.post("/api/v1/reports", status_code=202)
async def post_report(report: Report) -> dict[str, str]:
    return {"report_id": uuid.uuid4().hex, "case_id": report.last_seen.region_code or "",
            "status": "accepted"}
