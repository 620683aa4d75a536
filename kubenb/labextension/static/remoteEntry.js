/*
 * kubenb's JupyterLab extension, written by hand (no bundler): a cell whose first line is
 * %%kubefile holds a Kubefile, not Python, so its editor gets JupyterLab's Dockerfile
 * highlighting (a Kubefile has the Dockerfile's syntax); a cell that stops starting with the
 * magic gets the notebook's own language back.
 *
 * JupyterLab loads this file as a federated module: it calls init() with the shared modules
 * and get("./extension") for the plugin. The plugin needs INotebookTracker, which must be the
 * very token object JupyterLab uses, so it comes from the shared scope, never from a copy.
 */
var _JUPYTERLAB = (window._JUPYTERLAB = window._JUPYTERLAB || {});

(function () {
  "use strict";
  var MAGIC = /^%%kubefile(\s|$)/;
  var KUBEFILE_MIME = "text/x-dockerfile";
  var shared = null;

  function sharedModule(name) {
    var versions = shared && shared[name];
    if (!versions) {
      return Promise.reject(new Error("kubenb: JupyterLab shares no " + name));
    }
    var newest = Object.keys(versions).sort().pop();
    return Promise.resolve(versions[newest].get()).then(function (factory) {
      return factory();
    });
  }

  function sourceOf(cell) {
    var model = cell.model;
    return model.sharedModel ? model.sharedModel.getSource() : "";
  }

  function plugin(notebookModule) {
    var tracker = notebookModule.INotebookTracker;

    function fix(notebook, cell) {
      if (!cell || !cell.model || cell.model.type !== "code") {
        return;
      }
      var wanted = MAGIC.test(sourceOf(cell)) ? KUBEFILE_MIME : notebook.codeMimetype;
      if (wanted && cell.model.mimeType !== wanted) {
        cell.model.mimeType = wanted;
      }
    }

    function watch(panel) {
      var notebook = panel.content;
      var seen = new WeakSet();
      var fixAll = function () {
        notebook.widgets.forEach(function (cell) {
          if (cell && cell.model && !seen.has(cell.model) && cell.model.mimeTypeChanged) {
            seen.add(cell.model);  // the notebook resets every cell's language when the kernel's is known
            cell.model.mimeTypeChanged.connect(function () { fix(notebook, cell); });
          }
          fix(notebook, cell);
        });
      };
      notebook.modelContentChanged.connect(fixAll);
      panel.revealed.then(fixAll);
      panel.sessionContext.ready.then(fixAll);
    }

    return {
      id: "kubenb:kubefile-cells",
      description: "Kubefile highlighting for %%kubefile cells",
      autoStart: true,
      requires: [tracker],
      activate: function (app, notebooks) {
        notebooks.forEach(watch);
        notebooks.widgetAdded.connect(function (_sender, panel) { watch(panel); });
      },
    };
  }

  _JUPYTERLAB.kubenb = {
    init: function (scope) {
      shared = scope;
    },
    get: function (module) {
      if (module !== "./extension") {
        return Promise.reject(new Error("kubenb: no module " + module));
      }
      return sharedModule("@jupyterlab/notebook").then(function (notebookModule) {
        var made = { __esModule: true, default: [plugin(notebookModule)] };
        return function () { return made; };
      });
    },
  };
})();
