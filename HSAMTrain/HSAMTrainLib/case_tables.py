"""The two tables of the HSAM Train panel: the training cases (name, role, labelled slices, segments) and the
label mapping (each segment name -> a class of the base model, a new class, or background).

A mixin of HSAMTrainWidget. Unlike the rest of HSAMTrainLib it needs Slicer's GUI, so the package's __init__ does
not import it. It uses the widget's ``ui``, ``cases``, ``mapping``, ``logic``, ``currentBase``, ``addLog`` and
``updateGui``."""
import qt
import slicer
from slicer.i18n import tr as _

from .case_folder import loadCaseFiles
from .case_list import ROLES, TRAIN, VALIDATION
from .segment_mapping import BACKGROUND, segmentRows

NEW_CLASS = "\x00new class"  # item data of "new class" in the mapping table (never a class name)
UNMAPPED = ""


class CaseTables:
    # Cases

    def addCase(self, volume, segmentation, role=None):
        """Add a volume + segmentation pair (also called by HSAM Segment's "Add to training cases")."""
        case = self.cases.add(volume, segmentation, role)
        self.onCasesChanged()
        return case

    def onAddCaseButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not add the case."), waitCursor=True):
            self.addCase(self._parameterNode.volume, self._parameterNode.segmentation)

    def onAddFolderButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(self.parent, _("Folder of training cases"),
                                                     str(self.logic.trainingCasesFolder))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Could not load the cases."), waitCursor=True):
            for volume, segmentation, split in loadCaseFiles(folder, slicer.mrmlScene):
                try:
                    self.cases.add(volume, segmentation, split or None)
                except ValueError as exc:  # a scan that is a case already: the copy just loaded goes again
                    self.addLog(str(exc))
                    for node in (segmentation, volume):
                        slicer.mrmlScene.RemoveNode(node)
            self.onCasesChanged()

    def selectedCaseRow(self) -> int:
        return self.ui.casesTable.currentRow()

    def onRemoveCaseButton(self) -> None:
        row = self.selectedCaseRow()
        if 0 <= row < len(self.cases):
            self.cases.remove(row)
            self.onCasesChanged()

    def onMoveCase(self, offset: int) -> None:
        row = self.selectedCaseRow()
        if 0 <= row < len(self.cases):
            row = self.cases.move(row, offset)
            self.onCasesChanged()
            self.ui.casesTable.selectRow(row)

    def onRoleChanged(self, case, role: str) -> None:
        case.role = role
        self.updateGui()

    def onCasesChanged(self) -> None:
        table = self.ui.casesTable
        table.setRowCount(len(self.cases))
        for row, case in enumerate(self.cases):
            table.setItem(row, 0, qt.QTableWidgetItem(case.name))
            role = qt.QComboBox()
            role.addItem(_("training"), TRAIN)
            role.addItem(_("validation"), VALIDATION)
            role.currentIndex = ROLES.index(case.role)
            role.currentIndexChanged.connect(lambda index, case=case: self.onRoleChanged(case, ROLES[index]))
            table.setCellWidget(row, 1, role)
            summary = case.summary
            table.setItem(row, 2, qt.QTableWidgetItem(f"{summary.labelledSlices} / {summary.slices}"))
            table.setItem(row, 3, qt.QTableWidgetItem(", ".join(summary.organs)))
        table.resizeColumnsToContents()
        self.remap()

    # Label mapping

    def remap(self) -> None:
        """Suggest targets for new segments, keeping the choices made so far."""
        base = self.currentBase()
        self.mapping = self.logic.suggestMapping(self.cases, base, self.mapping) if base is not None else None
        self.updateMappingTable()
        self.updateGui()

    def updateMappingTable(self) -> None:
        table = self.ui.mappingTable
        rows = segmentRows(self.cases) if self.mapping is not None else []
        table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            table.setItem(index, 0, qt.QTableWidgetItem(row.name))
            table.setItem(index, 1, qt.QTableWidgetItem(", ".join(row.cases)))
            table.setCellWidget(index, 2, self.targetSelector(row))
        table.resizeColumnsToContents()

    def targetSelector(self, row):
        selector = qt.QComboBox()
        for c in self.mapping.classes:
            selector.addItem(c["name"], c["name"])
        if self.mapping.classValue(row.name) is None:
            selector.addItem(_("new class '{name}'").format(name=row.name), NEW_CLASS)
        selector.addItem(_("background (leave out)"), BACKGROUND)
        target = self.mapping.targetOf(row.name)
        if target is None:
            selector.addItem(_("(choose a class)"), UNMAPPED)
        selector.currentIndex = selector.findData(UNMAPPED if target is None else target)
        selector.currentIndexChanged.connect(lambda index, row=row, s=selector: self.onTargetChanged(row, s))
        return selector

    def onTargetChanged(self, row, selector) -> None:
        target = selector.itemData(selector.currentIndex)
        if target == UNMAPPED:
            return
        if target == NEW_CLASS:
            self.mapping.addNewClass(row)
        else:
            self.mapping.setTarget(row.name, target)
        self.mapping.removeUnusedNewClasses()
        qt.QTimer.singleShot(0, self.updateMappingTable)  # not while this selector's signal is being handled
        self.updateGui()
