"""The Settings section of the HSAM Train panel: the recipe choice and the fields of the engine's option table
(labels, tooltips and choices from the table; the parameter node binds the rest), and the settings they make.

A mixin of HSAMTrainWidget. Unlike the rest of HSAMTrainLib it needs Slicer's GUI, so the package's __init__ does
not import it. It uses the widget's ``ui``, ``_parameterNode`` and ``updateGui``."""
from .training_settings import PANEL_SETTINGS, RECIPES, SCENE_SETTINGS, TrainingSettings, recipeDescription


class SettingsPanel:
    def setupSettings(self) -> None:
        self.describeSettings()
        for _recipe, text in RECIPES:
            self.ui.recipeSelector.addItem(text)
        self.ui.recipeSelector.currentIndexChanged.connect(self.onRecipeChanged)
        self.onRecipeChanged()

    def settingWidgets(self) -> dict:
        return {"epochs": self.ui.epochsSpinBox, "sliceFraction": self.ui.sliceFractionSpinBox,
                "learningRate": self.ui.learningRateSpinBox, "loraRank": self.ui.loraRankSpinBox,
                "batchSize": self.ui.batchSizeSpinBox, "device": self.ui.deviceSelector,
                "freezeEncoder": self.ui.freezeEncoderCheckBox, "modality": self.ui.modalitySelector}

    def describeSettings(self) -> None:
        """Labels, tooltips and choices from the engine's option table (the parameter node sets the ranges)."""
        widgets = self.settingWidgets()
        for setting in PANEL_SETTINGS:
            if setting.shown:
                label = getattr(self.ui, setting.name + "Label")
                label.text = setting.label + ":"
                label.toolTip = widgets[setting.name].toolTip = setting.tooltip
                for _value, text in setting.choices:
                    widgets[setting.name].addItem(text)

    def onRecipeChanged(self, index=None) -> None:
        """A preset decides some settings: their fields are hidden, and the panel says what the preset sets."""
        recipe = TrainingSettings(recipe=RECIPES[self.ui.recipeSelector.currentIndex][0])
        widgets = self.settingWidgets()
        for setting in PANEL_SETTINGS:
            if setting.shown:
                shown = not recipe.decidedByRecipe(setting)
                widgets[setting.name].visible = shown
                getattr(self.ui, setting.name + "Label").visible = shown
        self.ui.recipeDescriptionLabel.text = recipeDescription(recipe.recipe)
        if self._parameterNode is not None:
            self.updateGui()  # the estimate

    def currentSettings(self) -> TrainingSettings:
        widgets = self.settingWidgets()
        values = {setting.name: getattr(self._parameterNode, setting.name) for setting in SCENE_SETTINGS}
        values.update({setting.name: setting.choices[widgets[setting.name].currentIndex][0]
                       for setting in PANEL_SETTINGS if setting.choices})
        return TrainingSettings(**values, device=self.ui.deviceSelector.currentText,
                                recipe=RECIPES[self.ui.recipeSelector.currentIndex][0])
