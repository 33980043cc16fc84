"""The training curve as Slicer plot nodes: a table (epoch, training loss, validation Dice), one plot series per
curve and a chart that shows both. The module panel shows the chart; the nodes are updated after every epoch."""
import vtk

from .progress import TrainingProgress

SERIES = (("training loss", (0.85, 0.33, 0.1)), ("validation Dice", (0.1, 0.45, 0.8)))


class TrainingPlot:
    def __init__(self, scene, title: str = "HSAM training") -> None:
        self.scene = scene
        self.table = scene.AddNewNodeByClass("vtkMRMLTableNode", title + " table")
        self.chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", title)
        self.chart.SetTitle(title)
        self.chart.SetXAxisTitle("epoch")
        self.chart.SetYAxisTitle("loss / Dice")
        for name in ("epoch",) + tuple(name for name, _ in SERIES):
            column = vtk.vtkDoubleArray()
            column.SetName(name)
            self.table.AddColumn(column)
        self.series = []
        for name, color in SERIES:
            series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", f"{title} {name}")
            series.SetAndObserveTableNodeID(self.table.GetID())
            series.SetXColumnName("epoch")
            series.SetYColumnName(name)
            series.SetPlotType(series.PlotTypeScatter)
            series.SetMarkerStyle(series.MarkerStyleCircle)
            series.SetColor(*color)
            self.chart.AddAndObservePlotSeriesNodeID(series.GetID())
            self.series.append(series)

    def nodes(self):
        return [self.table, self.chart] + self.series

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
