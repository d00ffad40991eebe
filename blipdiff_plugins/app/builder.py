"""The app: one shared `ModelService`, one tab per task, and a queue that bounds concurrent work."""

from __future__ import annotations

import gradio as gr

from ..tasks.models import model_notice
from . import tab_attention, tab_edit, tab_finetune, tab_generate, tab_inpaint, tab_style
from .service import ModelService
from .suggestions import write_examples


def build_app(service: ModelService, *, concurrency: int = 1, max_queue: int = 64) -> gr.Blocks:
    """The Gradio app on ``service``, its queue set up; launch it with ``css=display.PAGE_CSS`` (Gradio 6 takes a page's
    CSS at launch), which shows small results large with sharp pixels.

    Args:
        service (`ModelService`): holds the model shared by every tab and user.
        concurrency (`int`, defaults to 1): model requests (generate, edit, style, attention) run at once;
            more wait in the queue, so several users cannot run the machine out of memory. A fine-tune runs
            beside them on its own copy of the model, one at a time.
        max_queue (`int`, defaults to 64): requests waiting beyond this are refused with a message.
    """
    if concurrency < 1:
        raise ValueError(f"`concurrency` must be at least 1, got {concurrency}.")
    suggestions = service.suggestions
    examples = write_examples(service.output_dir / "examples", suggestions)
    with gr.Blocks(title="blipdiff") as demo:
        notice = f" **{model_notice(service.model_name)}.**" if service.is_builtin else ""
        gr.Markdown(f"# blipdiff: subject-driven generation\nModel: `{service.model_name}`.{notice}")
        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                generate = tab_generate.build(service, suggestions, examples)
            with gr.Tab("Fine-tune", id="finetune"):
                finetune = tab_finetune.build(service, suggestions)
            with gr.Tab("Edit", id="edit"):
                tab_edit.build(service, suggestions)
            with gr.Tab("Inpaint", id="inpaint"):
                tab_inpaint.build(service, suggestions)
            with gr.Tab("Style / structure", id="style"):
                tab_style.build(service, suggestions)
            with gr.Tab("Attention", id="attention"):
                tab_attention.build(service, suggestions)
        # the Generate tab lists the subject models there are now: on page load and after a fine-tune
        def list_subject_models():
            return gr.update(choices=[tab_generate.NO_SUBJECT_MODEL] + service.subject_models())

        demo.load(list_subject_models, None, [generate["subject_model"]], queue=False)
        finetune["event"].then(list_subject_models, None, [generate["subject_model"]], queue=False)
    # model requests share one concurrency group ("model"); the limit applies to the group as a whole
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    return demo
