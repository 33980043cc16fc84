"""The training curve as Slicer plot nodes: a table (epoch, training loss, validation Dice) and two charts, one per
curve, so that each has its own y-axis (a loss of 0.05 and a Dice of 0.8 on one axis flatten one of them;
Slicer's plot charts have a single y-axis). The module panel shows both; the nodes are updated after every epoch.

The nodes belong to the panel, not to the user's data: hidden from node selectors and the Data module, and never
saved with the scene."""
import vtk

from .training_progress import TrainingProgress

LOSS, DICE = "training loss", "validation Dice"
SERIES = ((LOSS, (0.85, 0.33, 0.1)), (DICE, (0.1, 0.45, 0.8)))


def panelOnly(node):
    """Keep a node out of the user's scene file and out of the node lists."""
    node.SetSaveWithScene(False)
    node.SetHideFromEditors(True)
    return node


class TrainingPlot:
    def __init__(self, scene, title: str = "HSAM training") -> None:
        self.scene = scene
        self.table = panelOnly(scene.AddNewNodeByClass("vtkMRMLTableNode", title + " table"))
        for name in ("epoch",) + tuple(name for name, _ in SERIES):
            column = vtk.vtkDoubleArray()
            column.SetName(name)
            self.table.AddColumn(column)
        self.series = []
        self.charts = []
        for name, color in SERIES:
            series = panelOnly(scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{title} {name}"))
            series.SetAndObserveTableNodeID(self.table.GetID())
            series.SetXColumnName("epoch")
            series.SetYColumnName(name)
            series.SetPlotType(series.PlotTypeScatter)
            series.SetMarkerStyle(series.MarkerStyleCircle)
            series.SetColor(*color)
            chart = panelOnly(scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{title} {name}"))
            chart.SetTitle(name)
            chart.SetXAxisTitle("epoch")
            chart.SetYAxisTitle(name)
            chart.SetLegendVisibility(False)  # one curve, named by the title and the axis
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
            self.series.append(series)
            self.charts.append(chart)
        diceChart = self.charts[1]
        diceChart.SetYAxisRangeAuto(False)
        diceChart.SetYAxisRange(0.0, 1.0)  # Dice is a fraction: a fixed scale shows progress honestly

    @property
    def chart(self):
        """The training loss chart (the first)."""
        return self.charts[0]

    @staticmethod
    def viewNode(scene):
        """A plot view node for the panel's plot widget, as hidden and unsaved as the charts."""
        return panelOnly(scene.AddNewNodeByClass("vtkMRMLPlotViewNode", "HSAM training view"))

    def nodes(self):
        return [self.table] + self.charts + self.series

    def update(self, progress: TrainingProgress) -> None:
        columns = progress.columns()
        table = self.table.GetTable()
        table.SetNumberOfRows(len(columns["epoch"]))
        for name, values in columns.items():
            array = table.GetColumnByName(name)
            for row, value in enumerate(values):
                array.SetValue(row, value)
        table.Modified()
        self.table.Modified()

    def remove(self) -> None:
        for node in self.nodes():
            if node.GetScene() is not None:
                self.scene.RemoveNode(node)
