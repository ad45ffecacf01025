"""CREDITOPS_TREE_SHAP chooses the TreeSHAP of a served XGBoost version, for every decision."""

import pytest

pytestmark = pytest.mark.slow


def test_the_tree_shap_setting_reaches_the_served_explainer(trained, trained_store) -> None:
    from creditops.registry import register_model
    from creditops.serving.served import build_served_model

    _, result = trained
    xgb = next(c for c in result.candidates if c.name == "xgboost")
    tags = {"parent_run_id": result.parent_run_id, "candidate": "xgboost", "seed": 42}
    version = register_model(xgb.model_uri, trained_store, alias=None, tags=tags)
    methods = {
        choice: build_served_model(
            trained_store.model_copy(update={"tree_shap": choice}), version
        ).explainer.method
        for choice in ("auto", "tree_path_dependent")
    }
    assert methods == {"auto": "tree_interventional", "tree_path_dependent": "tree_path_dependent"}
