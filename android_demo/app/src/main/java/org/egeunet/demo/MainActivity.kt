package org.egeunet.demo

import android.graphics.Bitmap
import android.net.Uri
import android.os.Bundle
import android.view.View
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.ImageView
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.FileProvider
import java.io.File
import java.util.concurrent.Executors

/**
 * One screen: choose the model (the full-int8 .tflite by default), pick a photo from the gallery or take
 * one, see the lesion overlay, its area fraction and the inference time. Work runs off the UI thread.
 */
class MainActivity : AppCompatActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private var segmenter: LiteRtSegmenter? = null
    private var photo: Bitmap? = null
    private var cameraUri: Uri? = null
    private lateinit var status: TextView
    private lateinit var overlay: ImageView

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        uri?.let(::loadPhoto)
    }
    private val takePhoto = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        if (saved) cameraUri?.let(::loadPhoto)
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        status = findViewById(R.id.status)
        overlay = findViewById(R.id.overlay)
        findViewById<Button>(R.id.gallery).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.camera).setOnClickListener {
            val file = File(cacheDir, "camera/photo.jpg").apply { parentFile?.mkdirs() }
            cameraUri = FileProvider.getUriForFile(this, "$packageName.files", file).also { takePhoto.launch(it) }
        }
        val models = assets.list("").orEmpty().filter { it.endsWith(".tflite") }.sorted()
        if (models.isEmpty()) {
            status.setText(R.string.no_model)
            return
        }
        val spinner = findViewById<Spinner>(R.id.model)
        spinner.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item, models)
        spinner.setSelection(defaultModel(models))
        spinner.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(parent: AdapterView<*>?, view: View?, position: Int, id: Long) = openModel(models[position])
            override fun onNothingSelected(parent: AdapterView<*>?) = Unit
        }
    }

    /** Full int8 by default (not the dynamic-range file, which computes in float), else the first model. */
    private fun defaultModel(models: List<String>): Int =
        models.indexOfFirst { "int8" in it && "dynamic" !in it }.coerceAtLeast(0)

    private fun openModel(name: String) = worker.execute {
        segmenter?.close()
        val opened = LiteRtSegmenter(this, name)
        segmenter = opened
        val io = opened.io
        runOnUiThread {
            status.text = getString(R.string.loaded, name, io.size, if (io.nhwc) "NHWC" else "NCHW", io.inputType)
        }
        photo?.let { segment(it) }
    }

    private fun loadPhoto(uri: Uri) = worker.execute {
        val bitmap = Photos.load(this, uri)
        photo = bitmap
        segment(bitmap)
    }

    /** Runs on the worker thread. */
    private fun segment(bitmap: Bitmap) {
        val model = segmenter ?: return
        val result = model.segment(bitmap)
        val shown = Bitmap.createBitmap(result.overlay, bitmap.width, bitmap.height, Bitmap.Config.ARGB_8888)
        runOnUiThread {
            overlay.setImageBitmap(shown)
            status.text = getString(R.string.result, 100 * result.areaFraction, result.inferenceMillis, model.assetName)
        }
    }

    override fun onDestroy() {
        worker.execute { segmenter?.close() }
        worker.shutdown()
        super.onDestroy()
    }
}
