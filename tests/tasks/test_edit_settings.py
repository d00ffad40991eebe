import dataclasses
import inspect

import pytest

from blipdiff_plugins.commands.edit import EDIT_SETTINGS_FROM_FLAGS
from blipdiff_plugins.pipelines.edit_conditioning import prepare_edit
from blipdiff_plugins.pipelines.edit_settings import EDIT_SETTING_NAMES, EditSettings
from blipdiff_plugins.pipelines.pipeline_blip_diffusion_edit import BlipDiffusionEditPipeline, edit_settings_from

NINE = ("edit", "alignment", "cross_replace_steps", "self_replace_steps", "local_blend", "blend_words", "blend_threshold",
        "blend_dilation", "equalizer")


def test_the_edit_settings_travel_as_one_object_through_every_signature():
    assert EDIT_SETTING_NAMES == NINE
    # The CLI fills every field from its flags, one entry each: a new field without a flag fails here.
    assert tuple(EDIT_SETTINGS_FROM_FLAGS) == EDIT_SETTING_NAMES
    # The pipeline and prepare_edit take the object, none of the fields one by one.
    call = inspect.signature(BlipDiffusionEditPipeline.__call__).parameters
    assert "edit_settings" in call and not set(NINE) & set(call)
    assert "settings" in inspect.signature(prepare_edit).parameters and not set(NINE) & set(inspect.signature(prepare_edit).parameters)
    # Each field is documented on the class and named in __call__'s docstring.
    for name in NINE:
        assert f"{name} (" in EditSettings.__doc__ and f"``{name}``" in BlipDiffusionEditPipeline.__call__.__doc__
    # prepare_edit reads every field (an unread field would be a setting that does nothing).
    source = inspect.getsource(prepare_edit)
    assert all(f"settings.{name}" in source for name in NINE)


def test_old_keywords_still_work_and_unknown_ones_do_not():
    settings = edit_settings_from(EditSettings(blend_threshold=0.5), {"edit": "replace", "local_blend": False})
    assert settings == EditSettings(edit="replace", local_blend=False, blend_threshold=0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'blend_treshold'"):
        edit_settings_from(None, {"blend_treshold": 0.2})
    with pytest.raises(ValueError, match=r"`edit` must be one of \('refine', 'replace', 'reweight'\), got 'swap'"):
        EditSettings(edit="swap")
    assert EditSettings.from_dict(EditSettings(blend_words=["dog"]).to_dict()) == EditSettings(blend_words=("dog",))
    with pytest.raises(ValueError, match="Unknown edit settings"):
        EditSettings.from_dict({"blend": 1})
    frozen = EditSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen.edit = "replace"
