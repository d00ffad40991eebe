"""The Fine-tune tab: train a subject on a copy of the model with live step, loss and ETA, and cancel."""

from __future__ import annotations

import time

import gradio as gr

from .errors import readable_errors
from .finetune_task import STRATEGIES, start_finetune
from .service import ModelService
from .suggestions import Suggestions


def progress_text(status) -> str:
    """One line of progress: step, loss and ETA."""
    if status.step == 0:
        return f"Starting: 0/{status.total_steps} steps..."
    eta = "" if status.eta_seconds is None else f" · ETA {status.eta_seconds:.0f} s"
    return f"Step {status.step}/{status.total_steps} · loss {status.loss:.4f}{eta}"


def build(service: ModelService, suggestions: Suggestions) -> dict:
    """Lay out the tab inside the current ``gr.Tab``; returns the run event for the builder to chain on."""
    jobs = {}  # the running job, for the Cancel button

    with gr.Row():
        with gr.Column():
            images = gr.File(label="Training images of one subject", file_count="multiple", file_types=["image"], elem_id="ft-images")
            subject = gr.Textbox(label="Subject word", placeholder=suggestions.subject, elem_id="ft-subject")
            with gr.Row():
                strategy = gr.Dropdown(list(STRATEGIES), value="lora", label="Strategy", elem_id="ft-strategy")
                steps = gr.Number(40, precision=0, label="Steps", elem_id="ft-steps")
            name = gr.Textbox(label="Save as (subject model name)", placeholder=suggestions.model_name, elem_id="ft-name")
            with gr.Row():
                start = gr.Button("Fine-tune", variant="primary", elem_id="ft-run")
                cancel = gr.Button("Cancel", variant="stop", elem_id="ft-cancel")
        with gr.Column():
            progress = gr.Markdown("Idle.", elem_id="ft-progress")

    @readable_errors
    def run(images, subject, strategy, steps, name):
        job = start_finetune(service, images=images, subject=subject, strategy=strategy, steps=steps, name=name)
        jobs["current"] = job
        shown = None
        try:
            while not job.status.done:
                text = progress_text(job.status)
                if text != shown:
                    shown = text
                    yield text
                time.sleep(0.1)
        finally:
            if not job.status.done:  # the page went away: stop training
                job.cancel()
        status = job.wait()
        if status.error is not None:
            raise status.error
        if status.cancelled:
            yield f"Cancelled at step {status.step}/{status.total_steps}; nothing was saved."
        else:
            yield f"Done: {progress_text(status)}. Saved as subject model **{status.folder.name}**; pick it in the Generate tab."

    def stop():
        job = jobs.get("current")
        if job is not None and not job.status.done:
            job.cancel()
            return "Cancelling after the current step..."
        return "No fine-tune is running."

    event = start.click(run, [images, subject, strategy, steps, name], [progress], api_name="finetune", concurrency_id="finetune")
    cancel.click(stop, None, [progress], queue=False)
    return {"event": event}
